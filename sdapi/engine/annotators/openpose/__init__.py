"""The sd-webui-controlnet extension's OpenPose annotator (preprocessors ``openpose``, ``openpose_hand``,
``openpose_face``, ``openpose_faceonly``, ``openpose_full``), written anew for sdapi.

The CMU networks (via pytorch-openpose and the extension's files ``body_pose_model.pth``, ``hand_pose_model.pth``,
``facenet.pth``) and the extension's post-processing and drawing, matched step by step so that its maps and pose
JSON come out the same.
"""

from sdapi.engine.annotators.openpose.detect import run_openpose
from sdapi.engine.annotators.openpose.loading import FILE_NAMES, OpenposeNets, load_openpose

__all__ = ["FILE_NAMES", "OpenposeNets", "load_openpose", "run_openpose"]
