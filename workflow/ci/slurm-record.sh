# shellcheck shell=bash
# The record of what workflow/ci/slurm-up.sh changed outside its runtime folder, sourced by
# slurm-up.sh and slurm-down.sh. It lives on disk ($PCL_SLURM_RECORD, /var/lib/pcl-slurm-ci),
# not in /run, so that slurm-down.sh can undo the changes after a reboot too, from the record
# alone and not from the processes that happen to run.
#
#   $RECORD/actions         one line per change, "<what>\t<path or name>", in the order made:
#                             created       a file that did not exist, written with the marker line
#                                           (removed on undo while it still has the marker)
#                             created-key   the munge key, which did not exist (removed on undo)
#                             backup        a file that existed; its copy is $RECORD/backup<path>
#                                           (copied back, with its mode and owner, on undo)
#                             created-dir   a folder that did not exist (removed on undo if empty)
#                             installed     a Debian package that was not installed (kept; named)
#                             disabled-unit a boot unit the package installation had enabled
#                             stopped-unit  a service the package installation had started
#   $RECORD/backup/...      the copies of the files that existed
#   $RECORD/lock            held while either script runs

RECORD=${PCL_SLURM_RECORD:-/var/lib/pcl-slurm-ci}
ACTIONS=$RECORD/actions
BACKUP=$RECORD/backup
MARKER="# written by pcl workflow/ci/slurm-up.sh"

record() {  # record WHAT PATH: append one change to the record (before making it, for new files)
  mkdir -p "$RECORD"
  printf '%s\t%s\n' "$1" "$2" >>"$ACTIONS"
}

recorded() {  # recorded WHAT PATH: the record already holds this change
  [[ -f $ACTIONS ]] && grep -qxF -- "$(printf '%s\t%s' "$1" "$2")" "$ACTIONS"
}

ours() {  # ours FILE: a file this script wrote (its marker line), whatever the record says
  [[ -f $1 && ! -L $1 ]] && grep -qxF -- "$MARKER" "$1"
}

take_over() {  # take_over FILE: before (over)writing FILE, record how to undo that
  local file=$1
  if recorded created "$file" || recorded backup "$file"; then
    return 0  # an earlier run without slurm-down: the first record is the one to undo
  fi
  if [[ -e $file || -L $file ]]; then
    if ours "$file"; then
      record created "$file"  # left by an earlier run whose record is gone
    else
      mkdir -p "$BACKUP$(dirname -- "$file")"
      cp -a -- "$file" "$BACKUP$file"
      record backup "$file"
    fi
  else
    record created "$file"
  fi
}

make_dir() {  # make_dir DIR [install -d options]: create DIR (recorded) unless it exists
  local dir=$1
  shift
  [[ -d $dir ]] && return 0
  record created-dir "$dir"
  install -d "$@" -- "$dir"
}

undo_record() {  # undo_record SAY: undo every recorded change, newest first; SAY prints a line
  local say=$1 what path installed=()
  [[ -f $ACTIONS ]] || return 0
  while IFS=$'\t' read -r what path; do
    case $what in
      created)
        if ours "$path"; then
          rm -f -- "$path" && "$say" "removed $path"
        elif [[ -e $path || -L $path ]]; then
          "$say" "kept $path: it no longer has the line '$MARKER', so someone else wrote it since"
        fi ;;
      created-key)
        if [[ -e $path || -L $path ]]; then rm -f -- "$path" && "$say" "removed $path"; fi ;;
      backup)
        rm -f -- "$path"
        cp -a -- "$BACKUP$path" "$path"
        "$say" "restored $path" ;;
      created-dir)
        if [[ -d $path ]]; then
          if rmdir -- "$path" 2>/dev/null; then "$say" "removed $path"; else "$say" "kept $path (not empty)"; fi
        fi ;;
      installed) installed+=("$path") ;;
      disabled-unit | stopped-unit) ;;  # the unit stays disabled (it came with the installation)
      *) "$say" "unknown record line '$what' for '$path' in $ACTIONS: left as it is" ;;
    esac
  done < <(tac -- "$ACTIONS")
  if ((${#installed[@]})); then
    "$say" "packages installed by slurm-up.sh stay installed (boot units disabled): apt-get purge ${installed[*]} && apt-get autoremove --purge"
  fi
}
