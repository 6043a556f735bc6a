# txt2img through /sdapi/v1/txt2img, as in the project's original notes
# (shared/seeds/000_97c3980523cf7d85.txt, "[linux-sd-webui]之txt2img"): the payload and the response
# handling are the notes' own, unchanged except the server URL and the checkpoint title.
#
# Run a server, then this script:
#     sdapi serve --listen --api                  # or A1111 itself, launched with --api
#     python examples/txt2img.py                  # writes test/0.png ... test/3.png
#
# Environment:
#     SDAPI_URL    server base URL           (default http://127.0.0.1:7860)
#     SDAPI_MODEL  sd_model_checkpoint title (default demo-sd15.safetensors, the built-in demo;
#                  a bare filename such as "darkSushi25D25D_v20.safetensors" is accepted as in A1111)
#     SDAPI_OUT    output folder             (default test)
#     SDAPI_SIZE   first-pass width/height   (default 512, the notes' value; hires fix doubles it)
import base64
import os

import requests

url = os.environ.get("SDAPI_URL", "http://127.0.0.1:7860").rstrip("/")
model = os.environ.get("SDAPI_MODEL", "demo-sd15.safetensors")
out = os.environ.get("SDAPI_OUT", "test")
size = int(os.environ.get("SDAPI_SIZE", "512"))

if __name__ == "__main__":
    os.makedirs(out, exist_ok=True)
    payload = {
        'prompt': "xxx",
        "negative_prompt": "xxxx",
        "sampler_index": 'DPM++ 2M Karras',
        "cfg_scale": 15,  # 如果CFG Scale越大,输出将更符合输入提示和/或输入图像,但会失真。另一方面,CFG Scale 值越低,越有可能偏离提示或输入图像,但质量也越好。
        "steps": 30,
        "seed": -1,
        'override_settings': {
            'sd_model_checkpoint': model, # 模型名
            'CLIP_stop_at_last_layers': 2,
        },
        'enable_hr': True,
        'denoising_strength': 0.7,  # 该参数的范围从0到1,其中0根本不添加噪声,你将获得添加的确切图像,1完全用噪声替换图像,
        'hr_scale': 2,
        'hr_upscaler': 'Latent',
    # 'hr_resize_x':768,
    # 'hr_resize_y':768,



        'height': size, # 图片越大ai就越倾向于往里面塞入更多的东西,绝大多数模型都是在512*512分辨率下训练,当输出尺寸比较大比如说1024*1024的时候,ai就会尝试在图中塞入两到三张图片的内容量,于是会出现各种肢体拼接,不受词条控制的多人,多角度等情况,增加词条可以部分缓解,但是更关键的还是控制好画幅,先画中小图,再放大为大图。
        'width': size,

        'batch_size': 4,  # 每批数量是显卡一次所生成的图片数量,速度要比调高批次快一点,但是调的太高可能会导致显存不足导致生成失败,而生成批次不会导致显存不足,只要时间足够会一直生成直到全部输出完毕。
        'n_iter': 1,
    }

    response = requests.post(url=f'{url}/sdapi/v1/txt2img', json=payload)

    r = response.json()


    if 'error' in r.keys():
        print(r)
        print(f"{r['error']}:{r['errors']}")
    else:
        print(len(r['images']))
        for i, imgb64 in enumerate(r['images']):
            imgdata = base64.b64decode(imgb64)
            with open(f"{out}/{i}.png", 'wb') as f:
                f.write(imgdata)
