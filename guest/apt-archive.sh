# Shared by build.sh and v86.sh (sourced, not run): reading Debian packages through a private apt
# state that uses the archive the host's apt already uses. The caller defines die() and fills
# the APT_OPTS array (-o options naming its private state) before calling apt_field.

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
