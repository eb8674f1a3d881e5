"""Datasets for hm2bp: MNIST, Fashion-MNIST, EMNIST balanced (IDX files), N-MNIST and other event
data, and the augmentation of training images.

- datasets: the dataset names, ImageDataset and EventDataset, class-stratified samples;
- catalog: ``load(name, split)``, where a dataset's files are looked up (``data_dir``, else
  ``$HM2BP_DATA``, else the user cache, else an operating-system copy such as Debian's
  dataset-fashion-mnist) and which dataset a file is (MD5); ``mnist-mini`` ships inside the
  package (``_data/``);
- idx: the IDX reader; download: the public mirrors, MD5-checked (``HM2BP_MIRROR`` overrides them);
- events: N-MNIST's .bin files and event recordings as users have them (:func:`from_events`),
  binned into spike trains by one function, :func:`bin_events`;
- augment: the SPEC_CNN 5 augmentation (computed by the engine);
- speech: spoken-letter samples (.dat cochleagrams, the authors' TI46 layout), and
  spoken_letters: the open stand-in for TI46 that ``hm2bp-data spoken-letters`` synthesizes.
"""
from __future__ import annotations

from .catalog import KNOWN_FILES, SYSTEM_DIRS, load, resolve_data_dir
from .datasets import (DATASETS, NMNIST_INPUTS, NMNIST_SENSOR, NMNIST_SIZE, NMNIST_STEP_US, SPLITS,
                       DatasetError, EventDataset, ImageDataset, check_classes, stratified_sample)
from .download import MD5, MIRRORS
from .events import RECIPES, bin_events, event_fields, from_events, from_frames, read_nmnist_events, \
    stabilise_saccades
from .idx import read_idx_images, read_idx_labels
from .speech import SpeechFileError, read_speech

__all__ = [
    "DATASETS",
    "SPLITS",
    "MIRRORS",
    "MD5",
    "KNOWN_FILES",
    "SYSTEM_DIRS",
    "NMNIST_SIZE",
    "NMNIST_INPUTS",
    "NMNIST_STEP_US",
    "NMNIST_SENSOR",
    "RECIPES",
    "DatasetError",
    "ImageDataset",
    "EventDataset",
    "load",
    "resolve_data_dir",
    "read_idx_images",
    "read_idx_labels",
    "read_nmnist_events",
    "event_fields",
    "stabilise_saccades",
    "bin_events",
    "from_events",
    "from_frames",
    "check_classes",
    "stratified_sample",
    "SpeechFileError",
    "read_speech",
]
