#!/bin/bash
# Build a small kernel for the lab from a kernel source tree, with error injection (no Debian kernel has it):
# `make tinyconfig`, then lab/own/lab.config on top, `make olddefconfig`, bzImage and modules (for
# Module.symvers).  The result is a prepared tree for `make kernel-lab KDIR=TREE` (IMAGE defaults to
# TREE/arch/x86/boot/bzImage).
#
#   lab/own/build-kernel.sh SRC        e.g. a tree unpacked from Debian's linux-source-6.12 package
#
# Needs: gcc, make, flex, bison, bc, libelf-dev, libssl-dev, dwarves (pahole, for BTF).  On this machine kind
# (2 vCPU) the 6.12.117 tree took 12.5 min for bzImage, and 26 s for the modules.
set -euo pipefail
SRC=$(cd "${1:?usage: build-kernel.sh KERNEL-SOURCE-TREE}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
[ -f "$SRC/Makefile" ] && [ -f "$SRC/scripts/kconfig/merge_config.sh" ] || { echo "build-kernel: $SRC is not a kernel source tree" >&2; exit 1; }
for t in flex bison bc pahole; do command -v $t >/dev/null || { echo "build-kernel: $t missing (apt-get install flex bison bc dwarves libelf-dev libssl-dev)" >&2; exit 1; }; done
cd "$SRC"
make -s tinyconfig
scripts/kconfig/merge_config.sh -m .config "$HERE/lab.config" >/dev/null
make -s olddefconfig
# every option of lab.config must have survived olddefconfig (a missing dependency drops it silently)
bad=""
for o in $(sed -n 's/^\(CONFIG_[A-Z0-9_]*\)=[ym"].*/\1/p' "$HERE/lab.config"); do grep -q "^$o=" .config || bad="$bad $o"; done
[ -z "$bad" ] || { echo "build-kernel: not set after olddefconfig:$bad" >&2; exit 1; }
time make -j"$(nproc)" bzImage
time make -j"$(nproc)" modules
echo "build-kernel: $(cat include/config/kernel.release): make kernel-lab KDIR=$SRC"
