"""Ways in and out of hm2bp: NIR graphs (`nir`), a PyTorch module (`torch`, needs torch) and the
authors' text checkpoints (`authors`). Their public paths are hm2bp.nir, hm2bp.torch and
hm2bp.authors; nothing is imported here, so torch is only needed by those who use it."""
