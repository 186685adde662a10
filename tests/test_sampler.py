"""The hand-built crop: grid == F.affine_grid, exact pixels on pixel boundaries, bilinear."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from alage_edge.model.sampler import BoxSampler, BoxSquash, boxes_to_theta  # noqa: E402


def test_grid_equals_affine_grid():
    torch.manual_seed(0)
    sampler = BoxSampler(17)
    x1y1 = torch.rand(6, 2) * 0.5
    boxes = torch.cat([x1y1, x1y1 + 0.1 + torch.rand(6, 2) * 0.4], 1)
    theta = boxes_to_theta(boxes)
    ours = sampler.make_grid(theta)
    ref = F.affine_grid(theta, (6, 3, 17, 17), align_corners=False)
    assert (ours - ref).abs().max().item() < 1e-5


def test_box_on_pixel_boundaries_samples_exact_pixels():
    img = torch.arange(3 * 8 * 8, dtype=torch.float32).reshape(1, 3, 8, 8)
    crop = BoxSampler(4)(img, torch.tensor([[0.25, 0.5, 0.75, 1.0]]))  # pixels x 2..5, y 4..7
    torch.testing.assert_close(crop, img[:, :, 4:8, 2:6], rtol=0, atol=1e-4)
    # a 2x up-sampled crop of one pixel-aligned region
    crop2 = BoxSampler(8)(img, torch.tensor([[0.0, 0.0, 0.5, 0.5]]))
    assert crop2.shape == (1, 3, 8, 8)


def _bilinear_ref(img: np.ndarray, box, size: int) -> np.ndarray:
    """numpy bilinear sampling with zero padding, align_corners=False."""
    c, h, w = img.shape
    x1, y1, x2, y2 = box
    out = np.zeros((c, size, size))
    for i in range(size):
        for j in range(size):
            u = x1 + (j + 0.5) / size * (x2 - x1)  # fraction of the width
            v = y1 + (i + 0.5) / size * (y2 - y1)
            px, py = u * w - 0.5, v * h - 0.5
            x0, y0 = int(np.floor(px)), int(np.floor(py))
            ax, ay = px - x0, py - y0
            for dy, wy in ((0, 1 - ay), (1, ay)):
                for dx, wx in ((0, 1 - ax), (1, ax)):
                    yy, xx = y0 + dy, x0 + dx
                    if 0 <= yy < h and 0 <= xx < w:
                        out[:, i, j] += wy * wx * img[:, yy, xx]
    return out


def _nearest_ref(img: np.ndarray, box, size: int) -> np.ndarray:
    c, h, w = img.shape
    x1, y1, x2, y2 = box
    out = np.zeros((c, size, size))
    for i in range(size):
        for j in range(size):
            px = int(np.clip(np.floor((x1 + (j + 0.5) / size * (x2 - x1)) * w), 0, w - 1))
            py = int(np.clip(np.floor((y1 + (i + 0.5) / size * (y2 - y1)) * h), 0, h - 1))
            out[:, i, j] = img[:, py, px]
    return out


def test_sampling_is_bilinear_not_nearest():
    rng = np.random.default_rng(0)
    img = rng.normal(size=(3, 12, 12)).astype(np.float32)
    box = (0.13, 0.21, 0.61, 0.69)  # edges between pixel centres
    got = BoxSampler(9)(torch.from_numpy(img)[None], torch.tensor([box]))[0].numpy()
    np.testing.assert_allclose(got, _bilinear_ref(img, box, 9), atol=1e-5)
    assert np.abs(got - _nearest_ref(img, box, 9)).mean() > 0.1


def test_squash_keeps_boxes_inside_and_inverts():
    sq = BoxSquash(0.25, 0.5)
    raw = torch.randn(1000, 3) * 10
    b = sq(raw)
    side = b[:, 2] - b[:, 0]
    assert (b >= 0).all() and (b <= 1).all()
    assert (side >= 0.25 - 1e-6).all() and (side <= 0.5 + 1e-6).all()
    torch.testing.assert_close(side, b[:, 3] - b[:, 1])
    box = sq(sq.inverse(0.3, 0.7, 0.4)[None])[0]
    torch.testing.assert_close(box, torch.tensor([0.1, 0.5, 0.5, 0.9]), atol=1e-4, rtol=0)
    with pytest.raises(ValueError):
        BoxSquash(0.6, 0.5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_geometry_stays_float32_in_low_precision_modules(dtype):
    """A half or bf16 module samples like fp32 on the same (rounded) inputs: the base grid, theta and
    grid_sample stay fp32, only the crop is cast back. A bf16 grid would be off by up to 1/256 of the
    half-width (checked below), the size of the detail the crops read."""
    torch.manual_seed(0)
    img, boxes = torch.randn(2, 3, 64, 64), torch.tensor([[0.11, 0.23, 0.41, 0.53], [0.3, 0.31, 0.93, 0.94]])
    low = BoxSampler(16).to(dtype)
    assert low.grid.dtype == torch.float32 and torch.equal(low.grid, BoxSampler(16).grid)
    crop = low(img.to(dtype), boxes.to(dtype))
    assert crop.dtype == dtype
    ref = BoxSampler(16)(img.to(dtype).float(), boxes.to(dtype).float()).to(dtype)
    torch.testing.assert_close(crop, ref, rtol=0, atol=0)
    grid = low.make_grid(boxes_to_theta(boxes.to(dtype).float()))
    assert (grid.to(torch.bfloat16).float() - grid).abs().max() > 1e-3  # what a bf16 grid would lose


def test_fp32_export_has_no_casts_for_the_sampler(tmp_path):
    onnx = pytest.importorskip("onnx")
    img = torch.randn(1, 3, 32, 32)
    boxes = torch.tensor([[0.1, 0.1, 0.6, 0.6]])
    torch.onnx.export(BoxSampler(8), (img, boxes), str(tmp_path / "s.onnx"), opset_version=17, dynamo=False)
    ops = {n.op_type for n in onnx.load(str(tmp_path / "s.onnx")).graph.node}
    assert "GridSample" in ops and "Cast" not in ops
