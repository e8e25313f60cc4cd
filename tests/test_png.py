"""The face PNG encoder: lossless, readable by OpenCV and Pillow, text chunks before the pixels."""
import io

import cv2
import numpy as np
import pytest
from PIL import Image

from extractor.png import SIGNATURE, encode_png, text_chunks


@pytest.mark.parametrize("shape", [(37, 53, 3), (16, 9), (20, 31, 4), (1, 1, 3)])
def test_pixels_round_trip_exactly(shape):
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    data = encode_png(image, [("faceswap", "{'a': 1}"), ("extractor", '{"ü": "ü"}')])
    assert data.startswith(SIGNATURE)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(decoded, image)  # OpenCV gives BGR(A) back, as it was given
    with Image.open(io.BytesIO(data)) as pil:
        rgb = np.asarray(pil)
    expected = image if image.ndim == 2 else image[..., [2, 1, 0, 3][:image.shape[2]]]
    assert np.array_equal(rgb, expected)  # an independent decoder agrees
    assert text_chunks(data) == {"faceswap": "{'a': 1}", "extractor": '{"ü": "ü"}'}


def test_text_chunks_come_before_the_pixels_in_the_given_order():
    data = encode_png(np.zeros((8, 8, 3), np.uint8), [("faceswap", "first"), ("extractor", "second")])
    positions = [data.index(marker) for marker in (b"IHDR", b"iTXtfaceswap", b"iTXtextractor", b"IDAT", b"IEND")]
    assert positions == sorted(positions)


def test_bad_images_are_refused():
    for image in (np.zeros((4, 4, 3), np.float32), np.zeros((0, 4, 3), np.uint8), np.zeros((4, 4, 2), np.uint8)):
        with pytest.raises(ValueError):
            encode_png(image)
