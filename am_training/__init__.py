"""Training the source acoustic models of `pretrain_am.py` (the script is the command line; this is the library).

    speech_split  the real speech (Speech-Commands folders, FSDD) split by speaker
    corpus        offline TTS, augmentation and the cached training corpus
    distill       the teacher, features, the `Distiller` (KD + CE) trained with `fit`, BatchNorm recalibration
    card          held-out scores, the confusion plot and the model card

Call `utils.setup_tensorflow()` before importing these modules (they import TensorFlow).
"""
