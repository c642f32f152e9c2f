#!/bin/sh
# make on a fleet-lab host. A SIMULATION of kbuild building an external
# module, `make -C /lib/modules/K/build M=DIR modules`, for pplay's build
# play: it reads DIR/Makefile's `obj-m += NAME.o` and `NAME-objs := X.o`,
# needs DIR/X.c and /lib/modules/K/build, and writes DIR/NAME.ko. That is
# no real module: its first line carries the vermagic of kernel K (which
# the lab's modinfo reads) and a digest of the sources, so its bytes depend
# only on the sources and K, as a reproducible build's would.
set -eu
kdir='' mdir='' target=''
while [ $# -gt 0 ]; do
  case "$1" in
    -C) kdir=$2; shift ;;
    -C*) kdir=${1#-C} ;;
    M=*) mdir=${1#M=} ;;
    -*) ;;
    *) target=$1 ;;
  esac
  shift
done
if [ -z "$kdir" ] || [ -z "$mdir" ] || [ "$target" != modules ]; then
  echo "make (fleet-lab): only \`make -C /lib/modules/K/build M=DIR modules\` is simulated" >&2
  exit 2
fi
[ -d "$kdir" ] || { echo "make: *** $kdir: No such file or directory.  Stop." >&2; exit 2; }
kver=$(basename "$(dirname "$(cd "$kdir" && pwd -P)")")
cd "$mdir"
name=$(sed -n 's/^obj-m *+= *\([A-Za-z0-9_-]*\)\.o *$/\1/p' Makefile | head -n 1)
[ -n "$name" ] || { echo "make: *** no obj-m in $mdir/Makefile.  Stop." >&2; exit 2; }
objs=$(sed -n "s/^$name-objs *:= *//p" Makefile)
[ -n "$objs" ] || objs="$name.o"
sums=''
for obj in $objs; do
  src=${obj%.o}.c
  [ -f "$src" ] || { echo "make[1]: *** No rule to make target '$mdir/$obj'.  Stop." >&2; exit 2; }
  echo "  CC [M]  $mdir/$obj"
  sums="$sums $(sha256sum "$src" | cut -c1-64)"
done
echo "  LD [M]  $mdir/$name.ko"
digest=$(printf '%s' "$sums" | sha256sum | cut -c1-64)
printf '\177ELF fleet-lab %s.ko vermagic=%s SMP mod_unload; sources=%s\n' \
  "$name" "$kver" "$digest" > ".$name.ko.tmp"
mv ".$name.ko.tmp" "$name.ko"
