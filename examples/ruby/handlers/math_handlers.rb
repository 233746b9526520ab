# frozen_string_literal: true

# math_handlers.rb - the Ruby side of the example workflows in ../templates: Tasker's
# mathematical conformance shapes, with the same math as tasker's builtin.square.
#
# A step without parents squares the task's even_number; any other step squares the product
# of its parents' "value" results. Result: {"value" => n}. Like the C handler, integers that
# leave the 64-bit range continue as floating point, so Ruby and C store the same numbers.
require 'tasker'

module MathWorkflows
  INT64_MAX = 2**63 - 1
  INT64_MIN = -(2**63)

  # Shared by every step of linear_workflow_rb, diamond_workflow_rb, complex_dag_workflow_rb
  # and tree_workflow_rb (as builtin.square serves all four C versions).
  class SquareHandler < TaskerCore::StepHandler::Base
    def call(context)
      parents = context.parents
      if parents.empty?
        value = context.get_input('even_number')
        invalid!('the task context\'s "even_number"') unless value.is_a?(Numeric)
      else
        value = 1
        parents.each do |parent|
          factor = context.get_dependency_field(parent, 'value')
          invalid!("\"value\" of parent \"#{parent}\"") unless factor.is_a?(Numeric)
          value = multiply(value, factor)
        end
      end
      success(result: { 'value' => multiply(value, value) })
    end

    private

    # A ValidationError is permanent: the step is not retried.
    def invalid!(what)
      raise TaskerCore::Errors::ValidationError, "#{self.class.name} needs a number in #{what}"
    end

    # a * b, exact while it fits in 64 bits (as C computes it), else a Float.
    def multiply(a, b)
      product = a * b
      return product unless product.is_a?(Integer) && (product > INT64_MAX || product < INT64_MIN)

      a.to_f * b.to_f
    end
  end
end
