"""Regenerate sdapi/configs/{sd15,sd2,sd2-v} from the published model dimensions (see cpu-lab.md §3)."""
import os, json, shutil
os.environ["HF_HUB_OFFLINE"]="1"
from pathlib import Path
import torch
from accelerate import init_empty_weights
from diffusers import UNet2DConditionModel, AutoencoderKL
from transformers import CLIPTextConfig
root = Path(__file__).resolve().parents[1] / "sdapi" / "configs"

def dump(p, d):
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(d, indent=2, sort_keys=True) + "\n")

def unet_cfg(**kw):
    with init_empty_weights():
        m = UNet2DConditionModel(**kw)
    d = dict(m.config); d = {k: v for k, v in d.items() if not k.startswith("_")}
    d = {"_class_name": "UNet2DConditionModel", "_diffusers_version": "0.42.1", **{k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}}
    return d

def vae_cfg(**kw):
    with init_empty_weights():
        m = AutoencoderKL(**kw)
    d = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(m.config).items() if not k.startswith("_")}
    return {"_class_name": "AutoencoderKL", "_diffusers_version": "0.42.1", **d}

def te_cfg(**kw):
    c = CLIPTextConfig(**kw)
    d = c.to_dict()
    for k in ("dtype", "torch_dtype", "transformers_version", "_name_or_path", "output_hidden_states", "return_dict", "id2label", "label2id", "problem_type", "chunk_size_feed_forward", "is_encoder_decoder", "output_attentions", "tie_word_embeddings"):
        d.pop(k, None)
    d["architectures"] = ["CLIPTextModel"]
    return d

def sched(pred):
    return {"_class_name": "PNDMScheduler", "_diffusers_version": "0.42.1", "beta_end": 0.012, "beta_schedule": "scaled_linear",
            "beta_start": 0.00085, "clip_sample": False, "num_train_timesteps": 1000, "prediction_type": pred,
            "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1, "timestep_spacing": "leading", "trained_betas": None}

model_index = {"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.42.1",
  "feature_extractor": [None, None], "image_encoder": [None, None], "requires_safety_checker": False,
  "safety_checker": [None, None], "scheduler": ["diffusers", "PNDMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
  "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}

def tok(pad):
    return {"add_prefix_space": False, "bos_token": "<|startoftext|>", "do_lower_case": True, "eos_token": "<|endoftext|>",
            "errors": "replace", "model_max_length": 77, "pad_token": pad, "tokenizer_class": "CLIPTokenizer", "unk_token": "<|endoftext|>"}, \
           {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": pad, "unk_token": "<|endoftext|>"}

down = ["CrossAttnDownBlock2D"]*3 + ["DownBlock2D"]; up = ["UpBlock2D"] + ["CrossAttnUpBlock2D"]*3
vae_common = dict(down_block_types=["DownEncoderBlock2D"]*4, up_block_types=["UpDecoderBlock2D"]*4, block_out_channels=[128,256,512,512],
                  layers_per_block=2, latent_channels=4, norm_num_groups=32, scaling_factor=0.18215)
specs = {
  "sd15": dict(unet=unet_cfg(sample_size=64, block_out_channels=[320,640,1280,1280], layers_per_block=2, attention_head_dim=8, cross_attention_dim=768, down_block_types=down, up_block_types=up),
               vae=vae_cfg(sample_size=512, **vae_common),
               te=te_cfg(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12, hidden_act="quick_gelu", projection_dim=768, max_position_embeddings=77, vocab_size=49408, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407, layer_norm_eps=1e-5),
               pred="epsilon", pad="<|endoftext|>"),
  "sd2": dict(unet=unet_cfg(sample_size=64, block_out_channels=[320,640,1280,1280], layers_per_block=2, attention_head_dim=[5,10,20,20], cross_attention_dim=1024, use_linear_projection=True, down_block_types=down, up_block_types=up),
               vae=vae_cfg(sample_size=512, **vae_common),
               te=te_cfg(hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=23, hidden_act="gelu", projection_dim=512, max_position_embeddings=77, vocab_size=49408, bos_token_id=49406, eos_token_id=49407, pad_token_id=0, layer_norm_eps=1e-5),
               pred="epsilon", pad="!"),
  "sd2-v": dict(unet=unet_cfg(sample_size=96, block_out_channels=[320,640,1280,1280], layers_per_block=2, attention_head_dim=[5,10,20,20], cross_attention_dim=1024, use_linear_projection=True, upcast_attention=True, down_block_types=down, up_block_types=up),
               vae=vae_cfg(sample_size=768, **vae_common),
               te=te_cfg(hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=23, hidden_act="gelu", projection_dim=512, max_position_embeddings=77, vocab_size=49408, bos_token_id=49406, eos_token_id=49407, pad_token_id=0, layer_norm_eps=1e-5),
               pred="v_prediction", pad="!"),
}
for name, s in specs.items():
    d = root / name
    if d.exists(): shutil.rmtree(d)
    dump(d / "model_index.json", model_index)
    dump(d / "unet/config.json", s["unet"])
    dump(d / "vae/config.json", s["vae"])
    dump(d / "text_encoder/config.json", s["te"])
    dump(d / "scheduler/scheduler_config.json", sched(s["pred"]))
    tc, sm = tok(s["pad"])
    dump(d / "tokenizer/tokenizer_config.json", tc)
    dump(d / "tokenizer/special_tokens_map.json", sm)
