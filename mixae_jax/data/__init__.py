"""The task's data: mixtures from MNIST and CIFAR-10.

  * `preprocessing`: the one definition of a mixture (`make_mixtures`);
  * `local_files`: readers of the standard MNIST / CIFAR-10 files;
  * `pipeline`: the data sources, in-step training pairs, fixed eval pairs.
"""
