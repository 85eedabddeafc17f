"""Reports people look at: an HTML page with packet ladders, JUnit with the pcaps, a grader's results.json."""
