#!/bin/sh
# npm runs every lifecycle script (ours and our dependencies') through this shell,
# so the offline build settings of mediasoup 3.8.4 (see ../shared/MEDIASOUP.md)
# are in place for a plain `npm ci` as well as for scripts/setup.sh.
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
export PYTHON="${PYTHON:-python3}"
export PYTHONPATH="$here/build-env${PYTHONPATH:+:$PYTHONPATH}"
case "${CXXFLAGS:-}" in
  *sigstksz.h*) ;;
  *) export CXXFLAGS="-include $here/build-env/sigstksz.h${CXXFLAGS:+ $CXXFLAGS}" ;;
esac
exec /bin/sh "$@"
