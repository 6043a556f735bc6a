"""The ControlNet extension's model-based preprocessors (its "annotators"), rebuilt as our own networks that read the
original annotator files (lllyasviel/Annotators and the MiDaS release) from a local folder; nothing is downloaded.

Each network file holds one concept: ``hed`` (soft edges), ``pidinet`` (pixel-difference soft edges), ``lineart``
(realistic and coarse line art), ``lineart_anime`` (the anime line-art U-Net), ``midas_backbone`` + ``midas``
(DPT-Hybrid depth and the normal map derived from it), ``leres`` (LeReS depth), ``efficientnet`` + ``normal_bae``
(NormalBae normals), ``uniformer`` + ``segmentation`` (ADE20K segmentation), ``mlsd`` (M-LSD straight line
segments), and the ``openpose`` package (body, hands and face). ``registry`` maps a preprocessor's network name to
its loader and runner, ``cache`` keeps loaded networks. Channel widths and depths are read from the file's tensor
shapes, so the real files and the narrow random files tests write go through the same code.
"""
