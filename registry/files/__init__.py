"""Reading model files as bytes, never executing them."""
