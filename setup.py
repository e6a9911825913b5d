"""Packaging beyond setup.cfg: the repository's conf/ ships as the package data asr_trainer/conf.

conf/ stays where the recipes read and edit it (one copy in the source tree); the wheel gets it as the
package ``asr_trainer.conf`` so that an installed ``asr-trainer`` finds its defaults from any directory
(asr_trainer/default_conf.py). setup.cfg cannot add a mapped package to ``find:``, hence this file.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["asr_trainer", "asr_trainer.*"]) + ["asr_trainer.conf"],
    package_dir={"asr_trainer.conf": "conf"},
    package_data={"asr_trainer.conf": ["*.yaml", "*/*.yaml"]},
)
