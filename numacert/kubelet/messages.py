"""The kubelet's own messages that more than one numacert module reproduces.

Kept in one place so that the configuration validator (numacert.kubelet.validate) and the
oracle's managers (numacert.oracle) print exactly the same text as the kubelet.
"""

CPU_NO_RESERVATION = "[cpumanager] unable to determine reserved CPU resources for static policy"
CPU_ZERO_RESERVATION = (
    "[cpumanager] the static policy requires systemreserved.cpu + kubereserved.cpu "
    "to be greater than zero"
)
MM_NO_SYSTEM_RESERVED = "[memorymanager] you should specify the system reserved memory"
ALIGN_BY_SOCKET_SNN = (  # [sic] "Topolgy", as the kubelet prints it
    "Topolgy manager single-numa-node policy is incompatible with CPUManager align-by-socket "
    "policy option"
)
ALIGN_BY_SOCKET_HW = (
    "Align by socket is not compatible with hardware where number of sockets are more than "
    "number of NUMA"
)
