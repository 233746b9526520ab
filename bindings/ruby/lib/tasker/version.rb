# frozen_string_literal: true

# version.rb - the Ruby binding's version (the same as libtasker's).
module TaskerCore
  VERSION = '0.1.0'
end
