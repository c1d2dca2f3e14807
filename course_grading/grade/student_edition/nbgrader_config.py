# nbgrader's configuration for students (`course check` reads where the assignments are).
# To fetch and submit through a course's nbgrader exchange, your instructor may give you the
# exchange's location: add it here as  c.Exchange.root = "/path/to/exchange"
c = get_config()  # noqa: F821 (provided by traitlets when it reads this file)

c.CourseDirectory.course_id = "{course_id}"
c.CourseDirectory.release_directory = "assignments"
