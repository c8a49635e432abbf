"""Where training actually runs: the only package that imports torch and lightning."""
