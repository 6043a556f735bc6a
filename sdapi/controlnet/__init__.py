"""ControlNet as the sd-webui-controlnet extension serves it through A1111's API: its model list, its
preprocessors (the pure image ones; model-based ones are listed and refused), its units read from
``alwayson_scripts``, control maps fitted to the generation size, and its infotext. No torch here: the engine
runs the ControlNets (:mod:`sdapi.engine.sampling.control`)."""
