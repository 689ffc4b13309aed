"""PCL-SR reproduction harness.

The package regenerates the tables of "A Practical Contrastive Learning Framework for Single
Image Super-Resolution" (Wu, Jiang, Liu; IEEE TNNLS 2023) from raw data and says, cell by cell,
where the paper holds.  Data flows one way: ``pcl.data`` -> ``pcl.train`` -> ``pcl.evaluate`` ->
``pcl.report``; ``pcl.cli`` only parses arguments.
"""

__version__ = "0.1.0"
