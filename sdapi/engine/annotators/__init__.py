"""The sd-webui-controlnet extension's model-based preprocessors (its ``annotator`` folder), as sdapi's own code."""
