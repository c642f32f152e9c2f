#!/bin/sh
# depmod on a fleet-lab host: the machine may have no kmod, and the lab's
# modules are not real ones. Writes modules.dep for the running kernel (or
# the release named), listing every module under kernel/, as depmod -a does.
release=$(uname -r)
for arg in "$@"; do
  case "$arg" in -*) ;; *) release=$arg ;; esac
done
dir=/lib/modules/$release
[ -d "$dir" ] || { echo "depmod: ERROR: could not open directory $dir" >&2; exit 1; }
cd "$dir" || exit 1
find kernel -name '*.ko*' | sort | sed 's/$/:/' > .modules.dep.tmp && mv .modules.dep.tmp modules.dep
