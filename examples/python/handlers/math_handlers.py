"""Handlers of the Python example workflows: the same math as tasker's builtin.square.

No parents: the task context's even_number squared. Otherwise: the product of the
parents' "value" results, squared. The result is {"value": n}. Like builtin.square, the
numbers are exact integers while they fit in 64 bits and continue in floating point beyond
(complex_dag and tree end at 6^64), so Python and C store the same values.

Two styles, both resolved by `python3 -m tasker.worker --handlers examples/python/handlers`:
  - a StepHandler class, found by its import path "math_handlers.SquareHandler"
    (linear_workflow_py, complex_dag_workflow_py);
  - a plain function registered under a name with @tasker.step_handler: "diamond_py.square"
    (diamond_workflow_py) and "tree_py.square" (tree_workflow_py).
"""

from tasker import PermanentError, StepHandler, register_handler, step_handler

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _multiply(a, b):
    """a * b as builtin.square computes it: exact while both are integers and the product
    fits in 64 bits, else in floating point."""
    if isinstance(a, int) and isinstance(b, int) and INT64_MIN <= a * b <= INT64_MAX:
        return a * b
    return float(a) * float(b)


def square_of(context):
    """The builtin.square computation for this step."""
    if not context.parents:
        n = context.get_input("even_number")
        if not _number(n):
            raise PermanentError('the task context needs a number in "even_number"')
        return _multiply(n, n)
    product = 1
    for parent in context.parents:
        value = context.get_dependency_field(parent, "value")
        if not _number(value):
            raise PermanentError(f'parent "{parent}" has no number in "value"')
        product = _multiply(product, value)
    return _multiply(product, product)


class SquareHandler(StepHandler):
    """linear_workflow_py and complex_dag_workflow_py: callable math_handlers.SquareHandler."""

    def call(self, context):
        return self.success({"value": square_of(context)})


@step_handler("diamond_py.square")
def diamond_square(context):
    """diamond_workflow_py: callable diamond_py.square; a dict return is a success."""
    return {"value": square_of(context)}


# tree_workflow_py: callable tree_py.square, the same function under another name
register_handler("tree_py.square", diamond_square)
