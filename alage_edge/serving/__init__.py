"""Serving on Triton Inference Server.

``repository``  a Triton model repository from a bundle: the global and attention streams as two models,
                a decode step, an ensemble ``alage`` that chains them (preprocessed tensors in), and
                ``alage_pictures`` (encoded pictures in: decode, find faces, preprocess, then ``alage``)
``server``      the real ``tritonserver`` binary (nvidia-pytriton's wheel carries it) started on a
                repository, waited on, stopped cleanly
``client``      pictures to a running server -> the same results as ``AgeEstimator.predict``
``load``        the load test behind ``alage-edge bench --serve``
``models/``     the Python-backend model files the repository copies (they import alage_edge)
"""
