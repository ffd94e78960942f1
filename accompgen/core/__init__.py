"""The numpy core: what training and the torch-free bridge share."""
