"""PyTorch twins of mixae_jax's networks, for the throughput comparison only.

Same layers, sizes, normalisation and activations as `mixae_jax.models`
(NCHW, PyTorch's native layout). Needs ``pip install torch`` (the
``bench`` extra); the package itself never imports this.
"""

from typing import Sequence

import torch
from torch import nn

# The consistent head's solver settings, shared with the JAX model.
from mixae_jax.models.heads import PROJECTION_DUAL_STEP  # pylint: disable=g-bad-import-order
from mixae_jax.models.heads import PROJECTION_STEPS
from mixae_jax.models.heads import PROJECTION_TRAIN_STEPS


class Seed004(nn.Module):
  """The reference report's design: see `mixae_jax.models.Seed004`."""

  def __init__(self, latent_dim: int = 128):
    super().__init__()
    layers, channels = [], 3
    for features in (64, 128, 256):
      layers += [nn.Conv2d(channels, features, 4, 2, 1), nn.BatchNorm2d(features),
                 nn.ReLU(), nn.Dropout(0.2)]
      channels = features
    self.encoder = nn.Sequential(*layers, nn.Flatten(), nn.Linear(4096, 512),
                                 nn.ReLU(), nn.Linear(512, latent_dim),
                                 nn.Dropout(0.5))
    self.digit = self._decoder(latent_dim)
    self.image = self._decoder(latent_dim)

  @staticmethod
  def _decoder(latent_dim: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(latent_dim, 512), nn.ReLU(), nn.Linear(512, 4096), nn.ReLU(),
        nn.Unflatten(1, (256, 4, 4)),
        nn.ConvTranspose2d(256, 128, 4, 2, 1), nn.BatchNorm2d(128), nn.ReLU(),
        nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.ConvTranspose2d(64, 3, 4, 2, 1), nn.Sigmoid())

  def forward(self, x):
    z = self.encoder(x)
    return self.digit(z), self.image(z)


class ConvBlock(nn.Sequential):
  def __init__(self, cin: int, cout: int):
    # As in JAX: no bias before a BatchNorm (PyTorch's momentum and eps).
    super().__init__(nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                     nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1), nn.ReLU(),
                     nn.Conv2d(cout, cout, 3, padding=1, bias=False),
                     nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1), nn.ReLU())


class UNetDecoder(nn.Module):
  def __init__(self, widths: Sequence[int], out_channels: int):
    super().__init__()
    self.ups, self.blocks = nn.ModuleList(), nn.ModuleList()
    cin = widths[-1]
    for features in reversed(widths[:-1]):
      self.ups.append(nn.ConvTranspose2d(cin, features, 2, 2))
      self.blocks.append(ConvBlock(2 * features, features))
      cin = features
    self.head = nn.Conv2d(cin, out_channels, 1)

  def forward(self, h, skips):
    for up, block, skip in zip(self.ups, self.blocks, reversed(skips)):
      h = block(torch.cat([up(h), skip], 1))
    return torch.sigmoid(self.head(h))


class UNet(nn.Module):
  """See `mixae_jax.models.unet.UNet` (by default a grey digit and the
  'consistent' head, as configs/dual.py)."""

  def __init__(self, widths: Sequence[int] = (32, 64, 128, 256),
               digit_channels: int = 1, head: str = 'consistent',
               digit_resized_from: int = 28):
    super().__init__()
    if head not in ('twin', 'consistent'):
      raise ValueError(f'head {head!r}: only twin and consistent are built here')
    self.head = head
    self.resized_from = digit_resized_from
    if digit_resized_from:
      # mixae_jax.models.upsampling_matrix, computed the same way.
      a = torch.nn.functional.interpolate(
          torch.eye(digit_resized_from, dtype=torch.float64)[None],
          size=32, mode='linear', align_corners=False)[0].T
      self.register_buffer('a', a.float())
      self.register_buffer('a_pinv', torch.linalg.pinv(a).float())
      self.norm2 = float(torch.linalg.matrix_norm(a, 2) ** 2)
    self.encoders = nn.ModuleList()
    cin = 3
    for features in widths[:-1]:
      self.encoders.append(ConvBlock(cin, features))
      cin = features
    self.bottleneck = ConvBlock(cin, widths[-1])
    self.digit = UNetDecoder(widths, digit_channels)
    self.image = UNetDecoder(widths, 3)

  def forward(self, x):
    skips, h = [], x
    for block in self.encoders:
      h = block(h)
      skips.append(h)
      h = nn.functional.max_pool2d(h, 2)
    h = self.bottleneck(h)
    digit, image = self.digit(h, skips), self.image(h, skips)
    grey = digit.shape[1] == 1
    if self.head == 'twin':
      return digit.expand(-1, 3, -1, -1) if grey else digit, image
    # mixae_jax.models.apply_head and project_digit, NCHW.
    if grey:
      d = 0.5 * (digit + (2 * x - image).mean(1, keepdim=True))
    else:
      d = digit + x - 0.5 * (digit + image)
    lo, hi = self._feasible_bounds(x, d.shape[1])
    d = torch.minimum(torch.maximum(d, lo), hi)
    if self.resized_from:
      d = self._project(d, lo, hi, PROJECTION_TRAIN_STEPS if self.training
                        else PROJECTION_STEPS)
    return d.expand(-1, 3, -1, -1), torch.clamp(2 * x - d, 0, 1)

  def _project(self, d, lo, hi, steps):
    # mixae_jax.models.project_digit: the same primal-dual steps.
    a, at = self.a, self.a.T
    sigma = PROJECTION_DUAL_STEP / self.norm2
    tau = 0.99 / (PROJECTION_DUAL_STEP * self.norm2)
    x_pre = torch.clamp(self.a_pinv @ d @ self.a_pinv.T, 0, 1)
    x_bar, y = x_pre, torch.zeros_like(d)
    for _ in range(steps):
      v = y + sigma * (a @ x_bar @ at)
      y = v - sigma * torch.minimum(torch.maximum((d + v) / (1 + sigma), lo), hi)
      x_next = torch.clamp(x_pre - tau * (at @ y @ a), 0, 1)
      x_bar, x_pre = 2 * x_next - x_pre, x_next
    return torch.minimum(torch.maximum(a @ x_pre @ at, lo), hi)

  @staticmethod
  def _feasible_bounds(x, channels):
    lo, hi = 2 * x - 1, 2 * x
    if channels == 1:
      lo, hi = lo.amax(1, keepdim=True), hi.amin(1, keepdim=True)
    lo, hi = lo.clamp(min=0), hi.clamp(max=1)
    return torch.minimum(lo, hi), torch.maximum(lo, hi)
