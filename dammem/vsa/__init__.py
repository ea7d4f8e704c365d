"""Vector-symbolic key-value memory: HRR binding, KROP and other codebooks, mutable store/erase memories.

Modules: :mod:`~dammem.vsa.hrr` (``bind`` / ``unbind`` of Plate (1995)), :mod:`~dammem.vsa.krop` (the KROP
codebooks of Liu et al. (2025) on the shared butterfly of :mod:`dammem._butterfly`), :mod:`~dammem.vsa.codebooks`
(one :class:`Codebook` interface over dense, one-hot, Hadamard, KROP and unitary-shift codebooks),
:mod:`~dammem.vsa.memory` (address-value memory and the overwrite rule).

References:
  - T. A. Plate (1995). Holographic Reduced Representations. IEEE Trans. Neural Networks 6(3), 623-641.
  - R. Liu, Q. Qiu, S. Khan, G. E. Katz (2025). Linearithmic Clean-up for Vector-Symbolic Key-Value Memory with
    Kronecker Rotation Products. NeSy 2025.
"""

from dammem._butterfly import butterfly_apply as butterfly_apply
from dammem._butterfly import butterfly_matrix as butterfly_matrix
from dammem._butterfly import default_group as default_group
from dammem._butterfly import fwht as fwht
from dammem._butterfly import log2_size as log2_size

from .codebooks import CODEBOOK_KINDS as CODEBOOK_KINDS
from .codebooks import BipolarCodebook as BipolarCodebook
from .codebooks import Codebook as Codebook
from .codebooks import DenseCodebook as DenseCodebook
from .codebooks import GaussianCodebook as GaussianCodebook
from .codebooks import HadamardCodebook as HadamardCodebook
from .codebooks import KropCodebook as KropCodebook
from .codebooks import OneHotCodebook as OneHotCodebook
from .codebooks import SignedKropCodebook as SignedKropCodebook
from .codebooks import UnitaryShiftCodebook as UnitaryShiftCodebook
from .codebooks import make_codebook as make_codebook
from .hrr import ADDRESS_KINDS as ADDRESS_KINDS
from .hrr import bind as bind
from .hrr import involution as involution
from .hrr import random_addresses as random_addresses
from .hrr import unbind as unbind
from .krop import degenerate_factors as degenerate_factors
from .krop import even_angles as even_angles
from .krop import hadamard_angles as hadamard_angles
from .krop import krop_apply as krop_apply
from .krop import krop_cleanup as krop_cleanup
from .krop import krop_factors as krop_factors
from .krop import krop_matrix as krop_matrix
from .krop import krop_row as krop_row
from .krop import krop_scores as krop_scores
from .krop import krop_signs as krop_signs
from .krop import krop_soft_cleanup as krop_soft_cleanup
from .krop import uniform_angles as uniform_angles
from .memory import ERASE_MODES as ERASE_MODES
from .memory import erase_estimate as erase_estimate
from .memory import overwrite as overwrite
from .memory import overwrite_scan as overwrite_scan
from .memory import recall as recall
from .memory import store as store
from .memory import write as write
