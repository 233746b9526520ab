"""Handlers of the Python example workflows: the same math as tasker's builtin.square.

No parents: the task context's even_number squared. Otherwise: the product of the
parents' "value" results, squared. The result is {"value": n}. Python integers are exact
at any size (builtin.square continues in floating point beyond 64 bits).

Two styles, both resolved by `python3 -m tasker.worker --handlers examples/python/handlers`:
  - a StepHandler class, found by its import path "math_handlers.SquareHandler";
  - a plain function registered as "diamond_py.square" with @tasker.step_handler.
"""

from tasker import PermanentError, StepHandler, step_handler


def square_of(context):
    """The builtin.square computation for this step."""
    if not context.parents:
        n = context.get_input("even_number")
        if not isinstance(n, (int, float)) or isinstance(n, bool):
            raise PermanentError('the task context needs a number in "even_number"')
        return n * n
    product = 1
    for parent in context.parents:
        value = context.get_dependency_field(parent, "value")
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise PermanentError(f'parent "{parent}" has no number in "value"')
        product *= value
    return product * product


class SquareHandler(StepHandler):
    """linear_workflow_py: callable math_handlers.SquareHandler."""

    def call(self, context):
        return self.success({"value": square_of(context)})


@step_handler("diamond_py.square")
def diamond_square(context):
    """diamond_workflow_py: callable diamond_py.square; a dict return is a success."""
    return {"value": square_of(context)}
