"""The models the registry builds, one per kernels module or framework, all with the
interface of base.Model (train step, epoch, prediction, weights read back as NumPy)."""
