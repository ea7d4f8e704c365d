"""Vector-symbolic key-value memory: HRR binding, KROP and other codebooks, mutable store/erase memories.

Modules: :mod:`~dammem.vsa.hrr` (bind/unbind), :mod:`~dammem.vsa.krop` (the shared butterfly and KROP codebooks of
seed 000), :mod:`~dammem.vsa.codebooks` (one interface over dense, one-hot, Hadamard, KROP and unitary-shift
codebooks), :mod:`~dammem.vsa.memory` (key-value memory and the overwrite rule).
"""

from .codebooks import CODEBOOK_KINDS as CODEBOOK_KINDS
from .codebooks import Codebook as Codebook
from .codebooks import make_codebook as make_codebook
from .hrr import KEY_KINDS as KEY_KINDS
from .hrr import bind as bind
from .hrr import correlate as correlate
from .hrr import involution as involution
from .hrr import random_keys as random_keys
from .hrr import unbind as unbind
from .krop import butterfly_apply as butterfly_apply
from .krop import butterfly_matrix as butterfly_matrix
from .krop import default_group as default_group
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
from .krop import log2_size as log2_size
from .krop import uniform_angles as uniform_angles
from .memory import ERASE_MODES as ERASE_MODES
from .memory import erase_estimate as erase_estimate
from .memory import overwrite as overwrite
from .memory import overwrite_scan as overwrite_scan
from .memory import read as read
from .memory import recall as recall
from .memory import store as store
from .memory import write as write
