"""Card QR codes read back by a decoder we did not write: zxing-cpp. The PNG scans to the
exact token text, at error-correction level Q, and the scanned text verifies offline."""

from __future__ import annotations

import io
import secrets
from datetime import UTC, datetime

import pytest
import zxingcpp
from PIL import Image

from onecard.card.purpose import Purpose
from onecard.card.qr import render_png
from onecard.card.verify import OfflineVerifier
from tests.card.qr_support import token, trust_list


@pytest.mark.parametrize("module_pixels", [2, 8])
def test_png_scans_back_to_the_exact_token(runtime, module_pixels: int) -> None:
    text = token(runtime)
    (result,) = zxingcpp.read_barcodes(
        Image.open(io.BytesIO(render_png(text, module_pixels=module_pixels)))
    )
    assert result.format == zxingcpp.BarcodeFormat.QRCode
    assert result.text == text
    assert result.ec_level == "Q"


def test_a_scanned_code_verifies_offline(runtime) -> None:
    now = datetime.now(UTC)
    reference = secrets.token_bytes(16)
    text = token(runtime, reference=reference, purpose=Purpose.TRANSIT, now=now)
    (result,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(render_png(text))))
    verifier = OfflineVerifier(trust_list(runtime, now=now))
    assert verifier.verify(result.text, purpose=Purpose.TRANSIT).card_reference == reference
