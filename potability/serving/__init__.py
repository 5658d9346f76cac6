"""Serving: the HTTP model server and the compiled (ONNX) scorer of a trained model."""
