# lib.sh: helpers the bench scripts share; sourced, never run.

# field_median FILE SIDE FIELD: the median of FIELD=value over the lines
# of FILE that start with SIDE (one line per round, as estload prints
# them after the side's name).
field_median() {
	awk -v side="$2" -v f="$3" '$1 == side {
		for (i = 2; i <= NF; i++)
			if (index($i, f "=") == 1) {
				v = substr($i, length(f) + 2); sub(/[^0-9.].*$/, "", v)
				print v
			}
	}' "$1" | sort -g | awk '{ a[NR] = $1 }
	    END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
