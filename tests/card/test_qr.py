"""The QR code images: level Q, one alphanumeric segment, a 4-module quiet zone, PNG and SVG
bytes (never files)."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import pytest
import qrcode
from PIL import Image
from qrcode.util import MODE_8BIT_BYTE, MODE_ALPHA_NUM, QRData

from onecard.card.qr import qr_code, read_code, render_png, render_svg
from onecard.core.errors import InvalidInput
from tests.card.qr_support import token


def _byte_mode_version(text: str) -> int:
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_Q)
    code.add_data(QRData(text.encode(), mode=MODE_8BIT_BYTE))
    code.make(fit=True)
    return code.version


def test_code_is_level_q_in_one_alphanumeric_segment(runtime) -> None:
    text = token(runtime)
    code = qr_code(text)
    assert code.error_correction == qrcode.constants.ERROR_CORRECT_Q
    assert [segment.mode for segment in code.data_list] == [MODE_ALPHA_NUM]
    assert code.border == 4
    assert code.version < _byte_mode_version(text)  # why alphanumeric mode matters


def test_png_is_a_black_and_white_image_with_a_quiet_zone(runtime) -> None:
    text = token(runtime)
    png = render_png(text, module_pixels=4)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(png))
    modules = qr_code(text).modules_count + 2 * 4
    assert image.size == (modules * 4, modules * 4)
    quiet = image.convert("L").crop((0, 0, image.size[0], 4 * 4))
    assert quiet.getextrema() == (255, 255)


def test_svg_is_one_scalable_path(runtime) -> None:
    text = token(runtime)
    root = ET.fromstring(render_svg(text))  # noqa: S314  (our own output)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    modules = qr_code(text).modules_count + 2 * 4
    assert root.get("viewBox") == f"0 0 {modules} {modules}"
    assert len(root.findall("{http://www.w3.org/2000/svg}path")) == 1


@pytest.mark.parametrize("text", ["OC1:bb8", "OC1:BB8\n", "HC1:BB8", "OC1:" + "0" * 1100])
def test_only_card_tokens_are_rendered(text: str) -> None:
    with pytest.raises(ValueError, match="card token"):
        render_png(text)
    with pytest.raises(ValueError, match="card token"):
        render_svg(text)


def test_module_size_is_bounded(runtime) -> None:
    for pixels in (0, 65):
        with pytest.raises(ValueError, match="1 to 64"):
            render_png(token(runtime), module_pixels=pixels)


def test_a_code_is_read_back_from_its_png_and_from_a_jpeg_photo(runtime) -> None:  # type: ignore[no-untyped-def]
    text = token(runtime)
    assert read_code(render_png(text)) == text
    photo = io.BytesIO()
    # A photo: grey, larger, lossy, the code off-centre.
    canvas = Image.new("L", (900, 700), 180)
    canvas.paste(Image.open(io.BytesIO(render_png(text, module_pixels=6))), (120, 90))
    canvas.save(photo, format="JPEG", quality=70)
    assert read_code(photo.getvalue()) == text


@pytest.mark.parametrize(
    ("image", "code"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 32, "image_unreadable"),
        (b"not an image", "image_unreadable"),
        (b"\0" * (10 * 1024 * 1024 + 1), "image_too_large"),
    ],
)
def test_unreadable_and_oversized_images_are_refused(image: bytes, code: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        read_code(image)
    assert refused.value.code == code


def test_a_decompression_bomb_is_refused_from_its_header() -> None:
    bomb = io.BytesIO()
    Image.new("1", (8000, 8000), 1).save(bomb, format="PNG")  # 64 Mpx in a few kB
    assert len(bomb.getvalue()) < 100_000
    with pytest.raises(InvalidInput) as refused:
        read_code(bomb.getvalue())
    assert refused.value.code == "image_too_large"


def test_an_image_without_a_card_code_or_with_two_is_refused(runtime) -> None:  # type: ignore[no-untyped-def]
    blank = io.BytesIO()
    Image.new("L", (200, 200), 255).save(blank, format="PNG")
    with pytest.raises(InvalidInput) as refused:
        read_code(blank.getvalue())
    assert refused.value.code == "image_without_code"
    first, second = (Image.open(io.BytesIO(render_png(token(runtime)))) for _ in range(2))
    both = Image.new("L", (first.width + second.width + 40, first.height), 255)
    both.paste(first, (0, 0))
    both.paste(second, (first.width + 40, 0))
    two = io.BytesIO()
    both.save(two, format="PNG")
    with pytest.raises(InvalidInput) as refused:
        read_code(two.getvalue())
    assert refused.value.code == "image_many_codes"
