"""Scale-out: the folder job on a Ray cluster (the ``[ray]`` extra), from the runtime's stages."""
