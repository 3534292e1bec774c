# Sourced by scripts/serve and scripts/test: a venv holding voicecheck with the given extras, torch
# from the CPU wheel index (the default index serves the multi-GB CUDA build), the dev-corpus tools,
# and how to use the commands afterwards.
TORCH_INDEX=${TORCH_INDEX:-https://download.pytorch.org/whl/cpu}
export PIP_DISABLE_PIP_VERSION_CHECK=1

say() { printf '\n==> %s\n' "$*" >&2; }

index_reachable() {
  "$VENV/bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)' \
    "$1" >/dev/null 2>&1
}

install_cpu_torch() {
  local requirement
  requirement=$(grep -o '"torch[<>=][^"]*"' pyproject.toml | tr -d '"')
  "$VENV/bin/python" -c 'import torch' 2>/dev/null && return 0
  if index_reachable "$TORCH_INDEX"; then
    say "installing $requirement from the CPU wheel index $TORCH_INDEX (about 200 MB)"
    "$VENV/bin/python" -m pip install --progress-bar on --index-url "$TORCH_INDEX" "$requirement"
  else
    say "the CPU wheel index $TORCH_INDEX cannot be reached; installing $requirement from the default index (pip prefers a CPU wheel it finds on disk)"
    "$VENV/bin/python" -m pip install --progress-bar on "$requirement"
  fi
}

# install_voicecheck EXTRAS: create $VENV if needed; reinstall when pyproject.toml changed
install_voicecheck() {
  local stamp="$VENV/.voicecheck-installed-$1"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ]; then return 0; fi
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  case ",$1," in *,export,*) install_cpu_torch ;; esac
  say "installing voicecheck[$1] and its dependencies"
  "$VENV/bin/python" -m pip install --quiet -e ".[$1]"
  touch "$stamp"
}

# install_corpus_tools: the Debian packages of scripts/corpus-packages.txt (the dev corpus and its
# tests need its engines, voices and recordings), installed when run as root with apt-get;
# otherwise says what is missing and returns 1
install_corpus_tools() {
  local missing packages
  packages=$(grep -v '^#' scripts/corpus-packages.txt | tr '\n' ' ')
  if command -v dpkg-query >/dev/null; then
    missing=$(for p in $packages; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || echo "$p"; done)
  else
    missing=$(for t in espeak-ng flite text2wave lame sox ffmpeg; do command -v "$t" >/dev/null || echo "$t"; done)
  fi
  [ -z "$missing" ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing the dev-corpus tools (Debian packages: $packages)"
    # shellcheck disable=SC2086
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages >/dev/null && return 0
  fi
  say "NOTE: missing $(echo $missing) (sudo apt-get install $packages)"
  return 1
}

# how_to_use: the one way to run the commands the README and docs/ print
how_to_use() {
  say "commands: $VENV/bin/voicecheck --help (serve, scan, stream, export, calibrate, evaluate);
    the README and docs/ print them as .venv/bin/voicecheck ... and .venv/bin/python ..., run from
    $(pwd); or '. $VENV/bin/activate' once per shell to type bare voicecheck / python"
}
