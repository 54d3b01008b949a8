"""Class-center sets for the MMC loss: crafting (MM, min-max, random) and ``.mat`` storage.

    centers = ts_centers.get_centers("mm", num_classes=10, feature_dim=64, c_mm=10.0)
    centers = ts_centers.load_centers(ts_centers.shipped_centers_path(10, 256), c_mm=10.0)

New center sets register one crafter with ``@register_centers("name")`` (contract:
:class:`CenterCrafter`, unit-norm float64 rows of shape ``(num_classes, feature_dim)``).
"""
from ts_centers.crafting import (
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
    "CenterCrafter",
    "DATA_DIR",
    "MAT_KEY",
    "SHIPPED_SIZES",
    "get_centers",
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
