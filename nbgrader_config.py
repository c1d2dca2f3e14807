# nbgrader's configuration for the course (read from the current directory, so run nbgrader
# from the repository root, or use `python -m course_grading.grading`, which loads this file).
#
# The repository's top-level folders are nbgrader's own: solutions/<assignment>/ is the source
# (instructor) version, assignments/<assignment>/ the student release. `make release` rewrites
# assignments/ from solutions/; the gradebook (gradebook.db) is a local, git-ignored file.
c = get_config()  # noqa: F821 (provided by traitlets when it reads this file)

c.CourseDirectory.course_id = "transfer-meta-learning"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "assignments"

# What a student sees in place of a solution.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Autograding runs the whole notebook; a try-it cell may load Omniglot or train a small net.
c.Execute.timeout = 120

# nbgrader's own feedback (the Formgrader's "Generate Feedback", `nbgrader generate_feedback`)
# shows what a student may see: hidden tests as passed or failed, never their code
from course_grading.grade.feedback import StudentView  # noqa: E402
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor  # noqa: E402
from nbgrader.preprocessors import GetGrades  # noqa: E402

c.GenerateFeedback.preprocessors = [StudentView, GetGrades, CSSHTMLHeaderPreprocessor]
