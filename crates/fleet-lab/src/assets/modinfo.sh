#!/bin/sh
# modinfo on a fleet-lab host: the lab's modules are not real ones (see
# make.sh); their first line holds `vermagic=...;`. Answers -F vermagic
# (and prints it without -F).
field='' file=''
while [ $# -gt 0 ]; do
  case "$1" in
    -F) field=$2; shift ;;
    -F*) field=${1#-F} ;;
    -*) ;;
    *) file=$1 ;;
  esac
  shift
done
[ -f "$file" ] || { echo "modinfo: ERROR: Module $file not found." >&2; exit 1; }
vermagic=$(head -n 1 "$file" | tr -d '\000' | sed -n 's/.* vermagic=\([^;]*\);.*/\1/p')
case "$field" in
  vermagic) [ -n "$vermagic" ] && echo "$vermagic" ;;
  '') echo "filename:       $file"; echo "vermagic:       $vermagic" ;;
  *) ;;
esac
