"""Class-center sets for the MMC loss: crafting (MM, min-max, random, hierarchical) and
``.mat`` storage.

    centers = ts_centers.get_centers("mm", num_classes=10, feature_dim=64, c_mm=10.0)
    centers = ts_centers.load_centers(ts_centers.shipped_centers_path(10, 256), c_mm=10.0)

New center sets register one crafter with ``@register_centers("name")`` (contract:
:class:`CenterCrafter`, unit-norm float64 rows of shape ``(num_classes, feature_dim)``).
"""
from ts_centers.builders import (
    CENTER_SETS,
    CenterCrafter,
    get_centers,
    max_cosine,
    minmax_centers,
    mm_algorithm1,
    mm_centers,
    random_centers,
    register_centers,
)
from ts_centers.hierarchical import (
    CIFAR100_COARSE_OF,
    check_coarse_labels,
    check_sub_ratio,
    hierarchical_centers,
)
from ts_centers.io import (
    DATA_DIR,
    MAT_KEY,
    SHIPPED_SIZES,
    load_centers,
    mat_filename,
    save_centers,
    shipped_centers_path,
)

__all__ = [
    "CENTER_SETS",
    "CIFAR100_COARSE_OF",
    "CenterCrafter",
    "DATA_DIR",
    "MAT_KEY",
    "SHIPPED_SIZES",
    "check_coarse_labels",
    "check_sub_ratio",
    "get_centers",
    "hierarchical_centers",
    "load_centers",
    "mat_filename",
    "max_cosine",
    "minmax_centers",
    "mm_algorithm1",
    "mm_centers",
    "random_centers",
    "register_centers",
    "save_centers",
    "shipped_centers_path",
]
