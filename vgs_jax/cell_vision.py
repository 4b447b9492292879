"""CELL's hard-coded visual system: shape histograms invariant to position, scale and rotation.

Roy & Pentland (2002) describe each object by a 2-D histogram over all pairs of points on its
boundary: the distance between the two points (divided by the largest such distance: scale
invariant) and the angle between the boundary normals at the two points (a difference of
directions: in-plane rotation invariant); only relative positions enter (position invariant). No
colour, size or texture. Histograms are compared by the chi-square distance.

Here, from the rendered pixels of one object's box: foreground weight alpha [h, w] in [0, 1] =
the pixel's largest channel distance from the background colour over the box's largest; alpha is
upsampled `UPSAMPLE` x (bilinear on the pixel-area grid, so shifting the object shifts the
result) and thresholded at 0.5 into a mask; boundary points are mask pixels with a 4-neighbour
outside; the normal at a boundary point is the direction of the gradient of the upsampled alpha
(Gaussian-smoothed by `SMOOTH`) there. Distances fall in `DISTANCE_BINS` bins over [0, 1], angle
differences (folded into [0, pi]) in `ANGLE_BINS` bins over [0, pi]; the histogram sums to 1.
"""
import numpy as np
from scipy import ndimage

UPSAMPLE = 4
DISTANCE_BINS = 8
ANGLE_BINS = 6
SMOOTH = 2.0  # Gaussian sigma (upsampled pixels) before the gradient: pixel staircases do not turn normals
MAX_POINTS = 256  # boundary points kept (evenly spaced in scan order): at most 32 640 pairs


def foreground(crop: np.ndarray, background) -> np.ndarray:
    """crop [h, w, 3] and the background colour [3] (same scale) -> alpha [h, w] in [0, 1]."""
    dist = np.abs(np.asarray(crop, np.float64) - np.asarray(background, np.float64)).max(-1)
    top = dist.max()
    return dist / top if top > 0 else dist


def boundary_points(alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """alpha [h, w] -> boundary points [n, 2] (row, column, upsampled pixels) and their normal
    directions [n] (radians)."""
    big = ndimage.zoom(np.pad(np.asarray(alpha, np.float64), 1), UPSAMPLE, order=1, grid_mode=True, mode="nearest")
    mask = big > 0.5
    if mask.sum() < 3:
        raise ValueError(f"cell_vision found {int(mask.sum())} foreground pixels in an object of {alpha.shape} "
                         "pixels; an object needs a visible area (check its box and the background colour).")
    edge = mask & ~ndimage.binary_erosion(mask, border_value=0)
    rows, cols = np.nonzero(edge)
    if len(rows) > MAX_POINTS:
        keep = np.linspace(0, len(rows) - 1, MAX_POINTS).round().astype(int)
        rows, cols = rows[keep], cols[keep]
    smooth = ndimage.gaussian_filter(big, SMOOTH)
    gy, gx = ndimage.sobel(smooth, axis=0), ndimage.sobel(smooth, axis=1)
    return np.stack([rows, cols], 1).astype(np.float64), np.arctan2(gy[rows, cols], gx[rows, cols])


def shape_histogram(alpha: np.ndarray) -> np.ndarray:
    """alpha [h, w] of one object -> float64 [DISTANCE_BINS * ANGLE_BINS], summing to 1."""
    points, normals = boundary_points(alpha)
    i, j = np.triu_indices(len(points), k=1)
    dist = np.linalg.norm(points[i] - points[j], axis=1)
    dist = dist / dist.max()
    angle = np.abs(np.angle(np.exp(1j * (normals[i] - normals[j]))))  # folded into [0, pi]
    hist, _, _ = np.histogram2d(dist, angle, bins=(DISTANCE_BINS, ANGLE_BINS), range=((0, 1), (0, np.pi)))
    return hist.reshape(-1) / hist.sum()


def chi_square(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Chi-square distance 0.5 * sum (a - b)^2 / (a + b) of histograms a [..., D] and b [..., D]
    (broadcast), in [0, 1] for histograms summing to 1."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    s = a + b
    return 0.5 * np.sum(np.where(s > 0, (a - b) ** 2 / np.where(s > 0, s, 1.0), 0.0), axis=-1)


def box_pixels(image: np.ndarray, box, margin: int = 1) -> np.ndarray:
    """image [H, W, 3], box [ymin, xmin, ymax, xmax] fractions -> the box's pixels plus `margin`."""
    h, w = image.shape[:2]
    y0, x0, y1, x1 = (float(v) for v in box)
    r0, c0 = max(int(np.floor(y0 * h)) - margin, 0), max(int(np.floor(x0 * w)) - margin, 0)
    r1, c1 = min(int(np.ceil(y1 * h)) + margin, h), min(int(np.ceil(x1 * w)) + margin, w)
    return image[r0:r1, c0:c1]
