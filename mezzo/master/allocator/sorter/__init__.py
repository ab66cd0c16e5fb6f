"""Sorters: order the allocator's clients (roles, frameworks). See `base.Sorter`."""

from mezzo.master.allocator.sorter.base import Quantities, Sorter, Totals
from mezzo.master.allocator.sorter.drf import DRFSorter
from mezzo.master.allocator.sorter.random import RandomSorter

__all__ = ["DRFSorter", "Quantities", "RandomSorter", "Sorter", "Totals"]
