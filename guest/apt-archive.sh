# Shared by build.sh and v86.sh (sourced, not run): reading Debian packages through a private apt
# state that uses the archive the host's apt already uses. The caller defines log(), die() and
# KEYRING, and calls apt_private (which fills APT_OPTS) before apt_field or apt-get.

# The archive URI the host's apt already uses: the first http(s) URI of a deb source.
host_archive_uri() {
  local uri=''
  if compgen -G '/etc/apt/sources.list.d/*.sources' >/dev/null; then
    uri=$(awk 'tolower($1)=="uris:" {print $2; exit}' /etc/apt/sources.list.d/*.sources)
  fi
  if [[ -z $uri && -r /etc/apt/sources.list ]]; then
    uri=$(awk '$1=="deb" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' \
      /etc/apt/sources.list)
  fi
  [[ -n $uri ]] || die 'no archive URI found in /etc/apt/sources.list{,.d/*.sources}'
  printf '%s\n' "${uri%/}"
}

apt_field() { # package[=version] field → the field's value in the (first) stanza
  apt-cache "${APT_OPTS[@]}" show "$1" 2>/dev/null |
    awk -v f="$2:" '$1==f {sub(/^[^:]*:[ \t]*/, ""); print; exit}' || true
}

# apt_private ARCH SUITE DIR → APT_OPTS for a private apt state in DIR: ARCH as the only
# architecture, SUITE of the host's archive, nothing of the host's apt configuration or package
# database. The index is downloaded and verified once per run; when that fails, returns 1 and
# APT_ERROR holds the first error (the whole log is DIR/update.log). Signatures are checked with
# KEYRING, or not at all with APT_TRUSTED=1 ([trusted=yes]).
APT_OPTS=()
APT_ERROR=''
declare -A APT_STATE=() # DIR → ok | failed
apt_private() {
  local arch=$1 suite=$2 dir=$3 opts
  [[ ${APT_STATE[$dir]:-} == failed ]] && return 1
  APT_OPTS=(
    -oAPT::Architecture="$arch" -oAPT::Architectures="$arch"
    -oDir::State::Lists="$dir/lists" -oDir::State::status=/dev/null
    -oDir::Etc::SourceList="$dir/sources.list" -oDir::Etc::SourceParts="$dir/empty.d"
    -oDir::Etc::Preferences=/dev/null -oDir::Etc::PreferencesParts="$dir/empty.d"
    -oDir::Cache="$dir/cache" -oAPT::Sandbox::User="$(id -un)" -oAcquire::Languages=none
  )
  [[ ${APT_STATE[$dir]:-} == ok ]] && return 0
  if [[ ${APT_TRUSTED:-0} == 1 ]]; then
    opts="arch=$arch trusted=yes"
  else
    opts="arch=$arch signed-by=$KEYRING"
  fi
  mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/empty.d"
  printf 'deb [%s] %s %s main\n' "$opts" "$(host_archive_uri)" "$suite" >"$dir/sources.list"
  log "apt: $arch index of $suite"
  if apt-get "${APT_OPTS[@]}" -qq update >"$dir/update.log" 2>&1 &&
    ! grep -q '^[EW]:' "$dir/update.log"; then
    APT_STATE[$dir]=ok
    return 0
  fi
  APT_STATE[$dir]=failed
  APT_ERROR=$(grep -m1 -E '^(E|W|Err):' "$dir/update.log" || true)
  return 1
}
