#!/usr/bin/env python
"""PyTorch DRAW (Gregor et al. 2015): the yardstick of docs/performance.md.

The same network and loss as draw_jax (draw_jax/model.py, attention.py,
objectives.py), written from the paper's equations (sections 2-3):

  x_hat_t   = x - sigmoid(c_{t-1})
  r_t       = read(x, x_hat_t, h_dec_{t-1})
  h_enc_t   = LSTM_enc(h_enc_{t-1}, [r_t, h_dec_{t-1}])
  z_t       ~ Q(z_t | h_enc_t) = N(mu_t, sigma_t),  mu, log sigma linear in h_enc_t
  h_dec_t   = LSTM_dec(h_dec_{t-1}, z_t)
  c_t       = c_{t-1} + write(h_dec_t)
  loss      = -log D(x | sigmoid(c_T))
              + sum_t sum_dims 1/2 (mu^2 + sigma^2 - log sigma^2 - 1)

so the KL's constant is -|z|/2 per step. Filterbank attention (section 3.2):
a linear layer of h_dec gives (gx~, gy~, log sigma^2, log delta~, log gamma);
  gx = (A+1)/2 (gx~+1), gy = (B+1)/2 (gy~+1), delta = (max(A,B)-1)/(N-1) delta~,
  mu_x^i = gx + (i - N/2 - 0.5) delta,  mu_y^j likewise with gy, i, j = 1..N,
  F_X[i,a] = exp(-(a - mu_x^i)^2 / (2 sigma^2)) / max(Z_X, 1e-8) over a = 1..A
  (1-based pixels), F_Y likewise over b = 1..B;
  read  = gamma [F_Y x F_X^T, F_Y x_hat F_X^T]
  write = (1/max(gamma^, 1e-6)) F^_Y^T w_t F^_X  with its own attention head.

How it is laid out differs from draw_jax, not what it computes:
  * The three linear maps of h_dec_t (write patch w_t, write attention, and the
    read attention that step t+1 uses) are one Linear(dec, N_w^2 + 10).
  * x and x_hat are read with one batched matmul pair, so r_t holds the
    glimpse values in the order (row, image, column), draw_jax's in (row,
    column, image): a permutation of the encoder's input weights. Without
    attention r_t is [x, x_hat], draw_jax's the two interleaved per pixel.
  * nn.LSTMCell has two bias vectors where draw_jax has one.
  * The KL term is computed once on the stacked [T, B, Z] mu / log sigma.
tests/torch_draw_test.py loads draw_jax's parameters into this model and
checks that the two -ELBOs agree. What is not the same: the initialisation
(PyTorch's defaults) and the training recipe (constant Adam 1e-3, clipping at
10): they change the loss curve, not the cost of a step.

Install (a venv of its own; torch is no dependency of the project):
  python3 -m venv ~/venv-torch && ~/venv-torch/bin/pip install torch==2.13.0 numpy   (outside the project)
CLI, from the repository root:
  ~/venv-torch/bin/python scripts/torch_draw.py --batch 128 --steps 30 --warmup 5 [--T 64] [--no-attention]
        [--compile] [--threads 2] [--data PATH] [--eval-test]
The data is binarized_mnist.npz: --data PATH, else under $DRAW_DATA_DIR (as
binarized_mnist/binarized_mnist.npz or binarized_mnist.npz). Prints one final
JSON line.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

DATA_FILE = 'binarized_mnist.npz'
# As draw_jax/attention.py: a filter wholly off the image gives a zero row
# rather than 0/0, and 1/gamma stays finite once exp(log gamma) underflows.
NORMALISER_FLOOR = 1e-8
GAMMA_FLOOR = 1e-6
NUM_ATTENTION_PARAMS = 5


class DRAW(nn.Module):
  """DRAW on single-channel images x [batch, B, A] with values in [0, 1]."""

  def __init__(self, A=28, B=28, T=64, enc=256, dec=256, z=100,
               read_n=2, write_n=5, attention=True):
    super().__init__()
    self.A, self.B, self.T, self.Z = A, B, T, z
    self.enc_size, self.dec_size = enc, dec
    self.read_n, self.write_n = read_n, write_n
    self.attention = attention
    self.glimpse_fn = None  # optionally a torch.compile'd self.glimpse
    if attention:
      read_dim = 2 * read_n * read_n
      write_dim = write_n * write_n
      # h_dec -> [write patch (write_n^2), write attn (5), read attn (5)]
      head_dim = write_dim + 2 * NUM_ATTENTION_PARAMS
    else:
      read_dim = 2 * A * B
      write_dim = A * B
      head_dim = write_dim
    self.read_dim, self.write_dim = read_dim, write_dim
    self.enc_rnn = nn.LSTMCell(read_dim + dec, enc)
    self.dec_rnn = nn.LSTMCell(z, dec)
    self.q = nn.Linear(enc, 2 * z)  # -> mu, log sigma
    self.dec_head = nn.Linear(dec, head_dim)
    # 1-based pixel coordinates a = 1..A, b = 1..B
    self.register_buffer('grid_a', torch.arange(1, A + 1, dtype=torch.float32),
                         persistent=False)
    self.register_buffer('grid_b', torch.arange(1, B + 1, dtype=torch.float32),
                         persistent=False)
    for n, name in ((read_n, 'offs_r'), (write_n, 'offs_w')):
      i = torch.arange(1, n + 1, dtype=torch.float32)
      self.register_buffer(name, i - n / 2.0 - 0.5, persistent=False)

  # ----- filterbank attention ------------------------------------------------
  def filterbank(self, p, N, offs):
    """p: [batch, 5] = (gx~, gy~, log sigma^2, log delta~, log gamma).

    Returns F_X [batch, N, A], F_Y [batch, N, B], gamma [batch].
    """
    A, B = self.A, self.B
    gx_t, gy_t, log_s2, log_d, log_g = p.unbind(-1)
    gx = (A + 1) / 2.0 * (gx_t + 1.0)
    gy = (B + 1) / 2.0 * (gy_t + 1.0)
    delta = (max(A, B) - 1) / max(N - 1, 1) * torch.exp(log_d)
    inv_2s2 = 0.5 * torch.exp(-log_s2)  # 1 / (2 sigma^2)
    gamma = torch.exp(log_g)
    if A == B:
      g = torch.stack((gx, gy), dim=1)  # [b, 2]
      mu = g.unsqueeze(-1) + offs * delta[:, None, None]  # [b, 2, N]
      d = self.grid_a - mu.unsqueeze(-1)  # [b, 2, N, A]
      Fxy = torch.exp(-d * d * inv_2s2[:, None, None, None])
      Fxy = Fxy / Fxy.sum(-1, keepdim=True).clamp_min(NORMALISER_FLOOR)
      Fx, Fy = Fxy.unbind(1)
    else:
      mux = gx[:, None] + offs * delta[:, None]
      muy = gy[:, None] + offs * delta[:, None]
      dx = self.grid_a - mux.unsqueeze(-1)
      dy = self.grid_b - muy.unsqueeze(-1)
      Fx = torch.exp(-dx * dx * inv_2s2[:, None, None])
      Fy = torch.exp(-dy * dy * inv_2s2[:, None, None])
      Fx = Fx / Fx.sum(-1, keepdim=True).clamp_min(NORMALISER_FLOOR)
      Fy = Fy / Fy.sum(-1, keepdim=True).clamp_min(NORMALISER_FLOOR)
    return Fx, Fy, gamma

  def read(self, x, x_hat, p):
    """x, x_hat: [b, B, A] (rows = y, cols = x). Returns [b, 2 N^2]."""
    if not self.attention:
      return torch.cat((x.flatten(1), x_hat.flatten(1)), dim=1)
    N = self.read_n
    Fx, Fy, gamma = self.filterbank(p, N, self.offs_r)
    img = torch.cat((x, x_hat), dim=-1)  # [b, B, 2A]
    t = torch.bmm(Fy, img)  # [b, N, 2A]  = [F_Y x | F_Y x_hat]
    t = t.view(-1, 2 * N, self.A)  # rows (n, which)
    g = torch.bmm(t, Fx.transpose(1, 2))  # [b, 2N, N]
    return g.flatten(1) * gamma[:, None]

  def write(self, head):
    """head: output of dec_head(h_dec_t). Returns canvas increment [b, B, A]."""
    if not self.attention:
      return head.view(-1, self.B, self.A)
    N = self.write_n
    w = head[:, : N * N].view(-1, N, N)
    p = head[:, N * N: N * N + NUM_ATTENTION_PARAMS]
    Fx, Fy, gamma = self.filterbank(p, N, self.offs_w)
    w = w / gamma.clamp_min(GAMMA_FLOOR)[:, None, None]
    return torch.bmm(torch.bmm(Fy.transpose(1, 2), w), Fx)  # F_Y^T w F_X

  # ----- one glimpse (paper eqs. 3-8) -------------------------------------------
  def glimpse(self, x, state, eps_t):
    canvas, h_enc, c_enc, h_dec, c_dec, head = state
    x_hat = x - torch.sigmoid(canvas)
    read_params = head[:, -NUM_ATTENTION_PARAMS:] if self.attention else None
    r = self.read(x, x_hat, read_params)
    h_enc, c_enc = self.enc_rnn(torch.cat((r, h_dec), dim=1), (h_enc, c_enc))
    mu, logsigma = self.q(h_enc).chunk(2, dim=1)
    z = mu + torch.exp(logsigma) * eps_t
    h_dec, c_dec = self.dec_rnn(z, (h_dec, c_dec))
    head = self.dec_head(h_dec)  # write patch, write attn, next read attn
    canvas = canvas + self.write(head)
    return (canvas, h_enc, c_enc, h_dec, c_dec, head), mu, logsigma

  # ----- full model ---------------------------------------------------------------
  def forward(self, x, eps):
    """x: [b, B, A] float in {0,1}; eps: [T, b, Z] standard normal.

    The noise is an argument, so a test can give both implementations the
    same z. Returns (mean loss, per-sample recon loss [b], per-sample KL [b]).
    """
    bsz = x.shape[0]
    T = eps.shape[0]
    h_enc = x.new_zeros(bsz, self.enc_size)
    c_enc = x.new_zeros(bsz, self.enc_size)
    h_dec = x.new_zeros(bsz, self.dec_size)
    c_dec = x.new_zeros(bsz, self.dec_size)
    canvas = x.new_zeros(bsz, self.B, self.A)
    head = self.dec_head(h_dec)  # read attention for t=1 comes from h_dec_0
    state = (canvas, h_enc, c_enc, h_dec, c_dec, head)
    glimpse = self.glimpse_fn if self.glimpse_fn is not None else self.glimpse
    mus, logsigmas = [], []
    for t in range(T):
      state, mu, logsigma = glimpse(x, state, eps[t])
      mus.append(mu)
      logsigmas.append(logsigma)
    canvas = state[0]
    recon = F.binary_cross_entropy_with_logits(
        canvas, x, reduction='none').flatten(1).sum(1)  # [b]
    mu = torch.stack(mus)
    ls = torch.stack(logsigmas)
    kl = 0.5 * (mu * mu + torch.exp(2 * ls) - 2 * ls - 1.0)  # [T, b, Z]
    kl = kl.sum(dim=(0, 2))  # [b]
    loss = (recon + kl).mean()
    return loss, recon, kl


def data_path(given):
  """--data, else binarized_mnist.npz under $DRAW_DATA_DIR; exits if neither."""
  if given:
    if not os.path.isfile(given):
      sys.exit(f'error: --data {given}: no such file')
    return given
  folder = os.environ.get('DRAW_DATA_DIR')
  if folder:
    for path in (os.path.join(folder, 'binarized_mnist', DATA_FILE),
                 os.path.join(folder, DATA_FILE)):
      if os.path.isfile(path):
        return path
  where = f'DRAW_DATA_DIR={folder} holds none' if folder else 'no DRAW_DATA_DIR'
  sys.exit(f'error: no {DATA_FILE} ({where}): pass --data PATH, or set '
           f'DRAW_DATA_DIR to the folder holding binarized_mnist/{DATA_FILE}')


def load_data(path):
  d = np.load(path)
  train = torch.from_numpy(d['train'].astype(np.float32))
  test = torch.from_numpy(d['test'].astype(np.float32))
  return train, test


@torch.no_grad()
def eval_test(model, test, T, batch=1000, seed=1234):
  gen = torch.Generator().manual_seed(seed)
  tot_r = tot_k = 0.0
  for i in range(0, test.shape[0], batch):
    xb = test[i:i + batch]
    eps = torch.randn(T, xb.shape[0], model.Z, generator=gen)
    _, r, k = model(xb, eps)
    tot_r += r.sum().item()
    tot_k += k.sum().item()
  n = test.shape[0]
  return tot_r / n, tot_k / n


def parse_args():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument('--batch', type=int, default=128)
  ap.add_argument('--steps', type=int, default=30)
  ap.add_argument('--warmup', type=int, default=5)
  ap.add_argument('--T', type=int, default=64)
  ap.add_argument('--no-attention', action='store_true')
  ap.add_argument('--compile', action='store_true')
  ap.add_argument('--compile-mode', default='default',
                  help='torch.compile mode (default, max-autotune-no-cudagraphs, ...)')
  ap.add_argument('--compile-scope', choices=('glimpse', 'full'), default='glimpse',
                  help='compile one glimpse (reused T times) or the whole unrolled forward')
  ap.add_argument('--threads', type=int, default=2)
  ap.add_argument('--data', default=None,
                  help=f'{DATA_FILE}; default: under $DRAW_DATA_DIR')
  ap.add_argument('--lr', type=float, default=1e-3)
  ap.add_argument('--clip', type=float, default=10.0)
  ap.add_argument('--seed', type=int, default=0)
  ap.add_argument('--eval-test', action='store_true')
  ap.add_argument('--log-every', type=int, default=0,
                  help='print loss to stderr every K steps')
  return ap.parse_args()


def main():
  args = parse_args()
  path = data_path(args.data)
  torch.set_num_threads(args.threads)
  torch.manual_seed(args.seed)
  train, test = load_data(path)

  model = DRAW(T=args.T, attention=not args.no_attention)
  params = list(model.parameters())
  opt = torch.optim.Adam(params, lr=args.lr, fused=True)
  fwd = model
  if args.compile:
    if args.compile_scope == 'full':  # whole unrolled T-step forward as one graph
      fwd = torch.compile(model, mode=args.compile_mode, dynamic=False)
    else:  # one glimpse compiled, reused T times
      model.glimpse_fn = torch.compile(model.glimpse, mode=args.compile_mode,
                                       dynamic=False)

  gen = torch.Generator().manual_seed(args.seed)
  n_train = train.shape[0]
  perm = torch.randperm(n_train, generator=gen)
  pos = 0

  def next_batch():
    nonlocal perm, pos
    if pos + args.batch > n_train:
      perm = torch.randperm(n_train, generator=gen)
      pos = 0
    idx = perm[pos:pos + args.batch]
    pos += args.batch
    return train[idx]

  def step():
    xb = next_batch()
    eps = torch.randn(args.T, args.batch, model.Z, generator=gen)
    loss, recon, kl = fwd(xb, eps)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, args.clip, foreach=True)
    opt.step()
    return loss.item(), recon, kl

  total = args.warmup + args.steps
  times, losses = [], []
  first_step_s = None
  t_start = time.perf_counter()
  for i in range(total):
    t0 = time.perf_counter()
    loss, recon, kl = step()
    dt = time.perf_counter() - t0
    if i == 0:
      first_step_s = dt
    losses.append(loss)
    if i >= args.warmup:
      times.append(dt)
    if not math.isfinite(loss):
      print(f'non-finite loss at step {i}', file=sys.stderr)
      break
    if args.log_every and (i % args.log_every == 0 or i == total - 1):
      print(f'step {i} loss {loss:.3f} (recon {recon.mean().item():.2f} '
            f'kl {kl.mean().item():.2f}) dt {dt*1e3:.1f}ms '
            f'elapsed {time.perf_counter()-t_start:.1f}s', file=sys.stderr,
            flush=True)

  med = statistics.median(times) if times else float('nan')
  out = {
      'impl': 'torch-compile' if args.compile else 'torch-eager',
      'attention': not args.no_attention,
      'T': args.T,
      'batch': args.batch,
      'images_per_sec': args.batch / med,
      'step_ms_median': med * 1e3,
      'step_ms_min': min(times) * 1e3 if times else float('nan'),
      'first_step_s': first_step_s,
      'timed_steps': len(times),
      'loss_first': losses[0],
      'loss_last': losses[-1],
      'torch': torch.__version__,
      'threads': torch.get_num_threads(),
  }
  if args.compile:
    out['compile_mode'] = args.compile_mode
    out['compile_scope'] = args.compile_scope
  if args.eval_test:
    model.eval()
    model.glimpse_fn = None  # evaluate eagerly (avoids recompiling for no_grad / batch 1000)
    r, k = eval_test(model, test, args.T)
    out['test_recon_nats'] = r
    out['test_kl_nats'] = k
    out['test_neg_elbo_nats'] = r + k
  print(json.dumps(out), flush=True)


if __name__ == '__main__':
  main()
