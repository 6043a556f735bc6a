"""A1111 v1.2.1 prompt syntax, in pure Python (no torch).

* :mod:`~sdapi.prompts.extra_networks`: ``<lora:name:w>`` tags, removed from the prompt before anything below sees
  it (:mod:`sdapi.lora_tags` turns them into files, outside this package: it needs the LoRA catalog).
* :mod:`~sdapi.prompts.composable`: ``a AND b :0.5`` (composable diffusion sub-prompts and their weights).
* :mod:`~sdapi.prompts.syntax` and :mod:`~sdapi.prompts.scheduling`: prompt editing ``[from:to:when]`` and
  alternation ``[a|b]``, turned into the texts each sampling step uses.
* :mod:`~sdapi.prompts.attention`: emphasis ``(x)``, ``[x]``, ``(x:1.3)``, escapes and ``BREAK``, turned into
  weighted text runs for the text encoder.

The engine applies them in A1111's order: tags out, AND split, schedule per sub-prompt, emphasis per scheduled text.
"""
