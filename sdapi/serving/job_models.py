"""The files a generation job uses besides its checkpoint: textual-inversion embeddings and the VAE.

Settled on the worker when the job starts, with the job's options (so ``override_settings: {"sd_vae": …}`` holds
for that job only): the embedding files are scanned and sorted out for the job's checkpoint (A1111 reloads them
before each job), the embeddings its prompts use are hashed into ``TI hashes``, and the VAE is chosen by A1111's
rule (:meth:`sdapi.vaes.VaeCatalog.resolve`) and named in the infotext. The engine then swaps in that VAE for the
job; the checkpoint itself is not read again.
"""

from __future__ import annotations

from sdapi.checkpoints import CheckpointInfo
from sdapi.embeddings import ti_hashes_text
from sdapi.engine.api import GenerationJob
from sdapi.infotext import LaterQuoted
from sdapi.options import OptionsView
from sdapi.serving.base import ServerState
from sdapi.translate import ResolvedRequest


def attach_job_models(state: ServerState, job: GenerationJob, resolved: ResolvedRequest, options: OptionsView,
                      checkpoint: CheckpointInfo) -> None:
    """Give ``job`` its embedding files and VAE, and ``resolved`` what its infotext says about them."""
    files = state.embedding_files()
    job.embeddings = files
    listing = state.sort_out_embeddings(checkpoint, files)
    if listing.loaded and options.get("textual_inversion_add_hashes_to_infotext"):
        used = [(name, listing.file_of(name)) for name in state.engine.embeddings_used(job)]
        text = ti_hashes_text([(name, path) for name, path in used if path is not None], state.catalog.hash_cache)
        if text:
            job.params.extra["TI hashes"] = LaterQuoted(text)
    choice = state.vaes.resolve(checkpoint.filename, str(options.get("sd_vae")),
                                bool(options.get("sd_vae_as_default")))
    job.vae = choice.path
    resolved.vae_name = choice.name
    resolved.vae_hash = state.vaes.short_hash(choice.path) if choice.path is not None else None
    if choice.warning:
        resolved.warnings.append(choice.warning)
