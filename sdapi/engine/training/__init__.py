"""The LoRA trainer on diffusers + torch: kohya's network, loss and file format, without kohya's code."""
