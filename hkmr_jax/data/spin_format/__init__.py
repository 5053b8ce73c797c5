"""SPIN-format datasets as TFDS builders writing array_record (no TensorFlow needed).

`sources` reads SPIN's `dataset_extras/*.npz` files (the table `DATASETS` names them),
`crop` holds SPIN's crop maths and bounded image reading, `builder` writes 224 × 224
crops with their labels (`build`), `reader` reads them back (`load_split`, `to_example`).
Stored records, crop geometry and bounds: docs/spin_format.md.
"""

from hkmr_jax.data.spin_format.builder import (
    JPEG_QUALITY,
    SEGMENTATION_DATASETS,
    TFDS_NAME,
    UNKNOWN_VISIBILITY,
    VISIBILITY_DATASETS,
    SpinFormat,
    build,
    encode_jpeg,
    make_record,
)
from hkmr_jax.data.spin_format.crop import (
    IMG_RES,
    MAX_BOX_FACTOR,
    MAX_IMAGE_PIXELS,
    ImageTooLargeError,
    check_box,
    crop_image,
    normalize_keypoints,
    open_image,
    read_image,
    read_label_png,
)
from hkmr_jax.data.spin_format.reader import load_split, to_example
from hkmr_jax.data.spin_format.sources import (
    DATASETS,
    EXTRAS_DIR,
    SplitSource,
    available_splits,
    check_images,
    expected_layout,
    find_npz,
    image_path,
    read_npz,
)

__all__ = [
    "DATASETS",
    "EXTRAS_DIR",
    "IMG_RES",
    "JPEG_QUALITY",
    "MAX_BOX_FACTOR",
    "MAX_IMAGE_PIXELS",
    "SEGMENTATION_DATASETS",
    "TFDS_NAME",
    "UNKNOWN_VISIBILITY",
    "VISIBILITY_DATASETS",
    "ImageTooLargeError",
    "SpinFormat",
    "SplitSource",
    "available_splits",
    "build",
    "check_box",
    "check_images",
    "crop_image",
    "encode_jpeg",
    "expected_layout",
    "find_npz",
    "image_path",
    "load_split",
    "make_record",
    "normalize_keypoints",
    "open_image",
    "read_image",
    "read_label_png",
    "read_npz",
    "to_example",
]
