# JupyterLab's Assignments tab reads nbgrader's settings here, in the assignments folder:
# they are the edition's own (../nbgrader_config.py).
load_subconfig("../nbgrader_config.py")  # noqa: F821 (provided by traitlets)
