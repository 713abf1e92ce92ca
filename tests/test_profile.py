"""benchmarks/profile.py's reading of a perf report (no perf needed)."""

import pytest

from benchmarks import profile

# Lines as `perf report --sort=dso,sym --stdio` prints them (abridged
# symbols), with its header and a blank line.
REPORT = """\
# Samples: 15K of event 'cpu-clock:ppp'
#
# Overhead  Shared Object       Symbol
# ........  ..................  ......
#
    16.17%  libjax_common.so    [.] Eigen::internal::gemm_pack_colmajor_block<float, long, Eigen::internal::TensorContractionSubMapper<float, long, 0, Eigen::TensorEvaluator<Eigen::TensorReshapingOp<Eigen::DSizes<long, 2> const, Eigen::TensorImagePatchOp<-1l, -1l> > > > >::operator()
     4.49%  [kernel.kallsyms]   [k] clear_page_erms
     1.36%  libjax_common.so    [.] ynn::sum_kn_fp32_avx512
     0.59%  libjax_common.so    [.] Eigen::internal::gemm_pack_colmajor_block<float, long, Eigen::internal::TensorContractionSubMapper<float, long, 1, Eigen::TensorEvaluator<Eigen::TensorReshapingOp<Eigen::DSizes<long, 2> const, Eigen::TensorMap<float> > > >::operator()
     0.54%  [JIT] tid 4318      [.] 0x00007fdbe238853d
     0.33%  [kernel.kallsyms]   [k] _raw_spin_unlock_irqrestore
     0.20%  libjax_common.so    [.] dnnl::impl::cpu::x64::avx512_common_gemm_f32::sgemm_nocopy_driver
     0.10%  libc.so.6           [.] __memmove_avx512_unaligned_erms

"""


def test_every_sample_line_is_read_and_nothing_else():
  rows = profile.parse_report(REPORT)
  assert len(rows) == 8
  assert rows[0][:2] == (16.17, 'libjax_common.so')
  assert rows[4] == (0.54, '[JIT] tid 4318', '0x00007fdbe238853d')
  assert sum(r[0] for r in rows) == pytest.approx(23.78)


def test_samples_are_grouped_by_what_ran():
  groups = [profile.group_of(dso, sym)
            for _, dso, sym in profile.parse_report(REPORT)]
  assert groups == [
      'Eigen: packing convolution inputs (im2col)',
      'kernel: zeroing fresh pages',
      'YNNPACK',
      'Eigen: packing other matrix panels',
      'JIT: oneDNN sgemm kernels and XLA fusions',
      'kernel: other',
      'oneDNN (named)',
      'libc (memcpy, malloc, ...)',
  ]
  assert profile.group_of('libfoo.so', 'bar') == 'other: libfoo.so'
