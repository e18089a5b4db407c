"""The math of the MLP, one module per tier, the same function names in each.

Dimension legend used by every module:
    N  batch size
    D  inputs per sample (784)
    H  hidden units (128)
    K  classes (10)
"""
