"""The torch-free runtime: onnxruntime generation, the job store and the OSC server that DAWs talk to."""
