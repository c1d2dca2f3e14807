# nbgrader's configuration for students (`course check` reads where the assignments are).
# To fetch and submit through a course's nbgrader exchange, your instructor may give you the
# exchange's location: add it here as  c.Exchange.root = "/path/to/exchange"
import os

c = get_config()  # noqa: F821 (provided by traitlets when it reads this file)

c.CourseDirectory.course_id = "{course_id}"
c.CourseDirectory.release_directory = "assignments"
# You work in assignments/<topic>/: nbgrader's Assignments tab and `course submit` hand in
# that folder (a copy fetched elsewhere would be the untouched release).
c.Exchange.assignment_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assignments")
