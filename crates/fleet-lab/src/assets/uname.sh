#!/bin/sh
# uname on a fleet-lab host: `uname -r` is the kernel release the lab gave
# the host (fleet-lab up --kernels); everything else is the machine's.
if [ "$*" = "-r" ] && [ -r /run/fleet-lab/kernel ]; then
  exec cat /run/fleet-lab/kernel
fi
exec /bin/uname "$@"
